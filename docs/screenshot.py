"""Makes docs/web-chat.png, the README's picture of the web chat: a phone-sized headless
Chromium (Debian's, as in the tests) goes through the first steps of a conversation.

    python docs/screenshot.py
"""

import asyncio
import sys
import tempfile
import threading
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from browser import chromium  # noqa: E402

from mitreden.app import App  # noqa: E402
from mitreden.config import load_settings  # noqa: E402


def main() -> None:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, environ={}, db=f"{tmp}/m.db", web_listen="127.0.0.1:0")
        app = asyncio.run_coroutine_threadsafe(_start(settings), loop).result()
        try:
            with chromium() as driver:
                driver.set_window_size(420, 1100)
                driver.get(app.web.address)
                wait = WebDriverWait(driver, 60)
                for value in ("de", "yes"):
                    button = (By.CSS_SELECTOR, f'button[value="{value}"]')
                    wait.until(shown.element_to_be_clickable(button)).click()
                wait.until(
                    shown.presence_of_element_located((By.CSS_SELECTOR, "li.resident + li + li"))
                )
                box = driver.find_element(By.ID, "message")
                box.send_keys("Mehr schattige Bänke am Spielplatz im Weinbergspark, bitte.")
                driver.find_element(By.CSS_SELECTOR, "form.write button").click()
                field = (By.CSS_SELECTOR, 'button[value="change"]')
                wait.until(shown.element_to_be_clickable(field))
                driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
                driver.save_screenshot(str(HERE / "web-chat.png"))
        finally:
            asyncio.run_coroutine_threadsafe(app.stop(), loop).result()


async def _start(settings: object) -> App:
    app = App(settings)  # type: ignore[arg-type]
    await app.start()
    return app


if __name__ == "__main__":
    main()
