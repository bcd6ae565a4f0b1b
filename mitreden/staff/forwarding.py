"""Forwarding an approved summary to the strategy team, and telling residents it went.

Files are always written (Markdown, PDF, CSV, JSON, XLSX in `forward_dir`); the summary goes
to the Matrix strategy room when one is configured (the Matrix channel sends what is queued
in `dispatches`) and by e-mail when SMTP is configured. In the same transaction that marks
the summary forwarded, every author of an idea in it who asked to hear back gets a notice
in the outbox, in their own language and channel, once per summary; an author who said no,
or erased their data, is not found and gets nothing.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.messages import Outbound, dump_outbound
from mitreden.logs import describe
from mitreden.nlp import findings
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff import files, mail
from mitreden.staff.summaries import APPROVED, FORWARDED, SummaryError, without_who_spoke
from mitreden.store import Store

log = logging.getLogger(__name__)
# How much of the summary a resident's notice quotes; the rest is in the files.
NOTICE_QUOTE = 1200


@dataclass
class Forwarding:
    """What forwarding did: files written, whether mail went, how many residents were told."""

    summary_id: int
    paths: list[Path] = field(default_factory=list)
    matrix: bool = False
    mailed: bool | None = None  # None: no SMTP configured
    mail_error: str | None = None
    notified: int = 0


def field_name(taxonomy: Taxonomy, catalogue: Catalogue, lane: str, language: str) -> str:
    """An action field's name as a summary in `language` gives it."""
    if lane == NEW_TOPICS:
        return catalogue.text(language, "summary_new_topics")
    try:
        return taxonomy.get(lane).title(language)
    except KeyError:
        return lane


def forwarded(
    store: Store, taxonomy: Taxonomy, catalogue: Catalogue, summary: dict
) -> files.Forwarded:
    """An approved summary with its ideas, redacted, as the files need them."""
    language, labels = summary["language"], catalogue.redaction_labels(summary["language"])
    ideas, names = [], {"": ""}
    for idea in store.forwarded_ideas(summary["idea_ids"]):
        lane = idea["confirmed_field"] or idea["suggested_field"] or ""
        if lane not in names:
            names[lane] = field_name(taxonomy, catalogue, lane, language)
        ideas.append(
            files.ForwardedIdea(
                id=idea["id"],
                text=findings.for_others(idea, labels),
                field=lane,
                field_name=names[lane],
                created_at=idea["created_at"],
                district=idea["district"],
                age_band=idea["age_band"],
                actor_group=idea["actor_group"],
                language=idea["language"],
                channel=idea["channel"],
                supporters=idea["supporters"],
                group=idea["cluster_id"],
                group_label=idea["group_label"],
                review=idea["review"],
            )
        )
    return files.Forwarded(
        summary_id=summary["id"],
        lane=summary["lane"],
        field_name=field_name(taxonomy, catalogue, summary["lane"], language),
        language=language,
        markdown=summary["text"],
        approved_by=summary["approved_by"] or "",
        approved_at=summary["approved_at"] or "",
        ideas=ideas,
    )


def notice(catalogue: Catalogue, taxonomy: Taxonomy, summary: dict, language: str) -> Outbound:
    """What a resident is told: which field, that it went to the strategy team, and the
    summary's beginning, without the table of who spoke (that is for the strategy team)."""
    text = without_who_spoke(summary, catalogue)
    if len(text) > NOTICE_QUOTE:
        cut = text.rfind("\n\n", 0, NOTICE_QUOTE)
        text = (
            text[: cut if cut > 0 else NOTICE_QUOTE] + "\n\n" + catalogue.text(language, "loop_cut")
        )
    name = field_name(taxonomy, catalogue, summary["lane"], language)
    return Outbound(
        catalogue.text(language, "loop_notice", field=name, summary=text),
        rtl=catalogue.right_to_left(language),
    )


def forward(
    store: Store,
    settings: Settings,
    taxonomy: Taxonomy,
    catalogue: Catalogue,
    summary_id: int,
    actor: str,
    now: str,
) -> Forwarding:
    """Forward an approved summary: files, Matrix, residents' notices, then e-mail, one after
    the other (the command line). The dashboard runs the same steps, each on its own thread:
    only `commit` needs the engine's.

    E-mail is sent last and outside the transaction: a mail server that is down leaves the
    summary forwarded (files written, residents told) with the failure audited, and
    `resend_mail` tries again."""
    settings.smtp()  # a broken mail setup is refused before anything is forwarded
    content = prepare(store, taxonomy, catalogue, summary_id, APPROVED)
    rendered = files.render(content)
    paths = files.write(rendered, settings.forward_directory)
    result = commit(store, settings, taxonomy, catalogue, summary_id, paths, actor, now)
    result.mailed, result.mail_error = send_mail(settings, content, rendered)
    record_mail(store, settings, summary_id, result, actor, now)
    return result


def prepare(
    store: Store, taxonomy: Taxonomy, catalogue: Catalogue, summary_id: int, state: str
) -> files.Forwarded:
    """A summary in `state` with its ideas, as the files need them. Only reads, so the pages'
    own connection and thread can do it."""
    return forwarded(store, taxonomy, catalogue, summary_in(store, summary_id, state))


def summary_in(store: Store, summary_id: int, state: str) -> dict:
    """The summary, if it is in `state`; refused otherwise."""
    summary = store.summary(summary_id)
    if summary is None:
        raise SummaryError(f"there is no summary {summary_id}", "refused_no_summary")
    if summary["state"] != state:
        raise SummaryError(f"summary {summary_id} is not {state}", f"refused_not_{state}")
    return summary


def commit(
    store: Store,
    settings: Settings,
    taxonomy: Taxonomy,
    catalogue: Catalogue,
    summary_id: int,
    paths: list[Path],
    actor: str,
    now: str,
) -> Forwarding:
    """Mark the summary forwarded, queue it for Matrix, write the residents' notices and audit
    it, in one transaction (the engine's thread: it writes)."""
    result = Forwarding(summary_id, paths=paths)
    with store.transaction():
        summary = store.summary(summary_id)
        if summary is None or summary["state"] != APPROVED:  # forwarded meanwhile, elsewhere
            raise SummaryError(f"summary {summary_id} is not approved", "refused_not_approved")
        store.update_summary(summary_id, state=FORWARDED, forwarded_at=now, updated_at=now)
        if settings.matrix_strategy_room:
            dispatch = store.add_dispatch(summary["lane"], summary["language"], actor, now)
            store.link_dispatch(dispatch, summary_id)
            result.matrix = True
        people = store.to_notify(summary["idea_ids"], summary_id)
        notices: dict[str, str] = {}  # by language: thousands of residents, a few languages
        for language in {person["language"] for person in people}:
            notices[language] = dump_outbound(notice(catalogue, taxonomy, summary, language))
        store.post_many(
            [
                (p["channel"], p["address"], notices[p["language"]], p["participant_id"])
                for p in people
            ],
            now,
        )
        store.add_notified(summary_id, [person["participant_id"] for person in people], now)
        result.notified = len(people)
        store.audit(
            now,
            actor,
            "summary.forwarded",
            f"summary:{summary_id}",
            lane=summary["lane"],
            files=[p.name for p in paths],
            matrix=result.matrix,
            notified=result.notified,
        )
    return result


def send_mail(
    settings: Settings, content: files.Forwarded, rendered: dict[str, tuple[str, bytes]]
) -> tuple[bool | None, str | None]:
    """(sent, why not): None when no SMTP is configured. `rendered` are the files already
    made (`files.render`), attached as they were written. Talks to the mail server only, so
    it can wait for one that is slow without holding anyone else up."""
    smtp = settings.smtp()
    if smtp is None:
        return None, None
    subject = f"{content.field_name} ({content.summary_id})"
    try:
        mail.send(smtp, subject, content.markdown, rendered)
    except mail.MailError as err:
        log.warning("forwarding by e-mail failed: %s", describe(err))
        return False, str(err)
    return True, None


def record_mail(
    store: Store, settings: Settings, summary_id: int, result: Forwarding, actor: str, now: str
) -> None:
    """Audit whether the e-mail went (the engine's thread: it writes)."""
    smtp = settings.smtp()
    if smtp is None or result.mailed is None:
        return
    with store.transaction():
        store.audit(
            now,
            actor,
            "summary.mailed" if result.mailed else "summary.mail_failed",
            f"summary:{summary_id}",
            recipients=len(smtp.recipients),
        )


def resend_mail(
    store: Store,
    settings: Settings,
    taxonomy: Taxonomy,
    catalogue: Catalogue,
    summary_id: int,
    actor: str,
    now: str,
) -> Forwarding:
    """Send a forwarded summary's e-mail again (after the mail server failed)."""
    content = prepare(store, taxonomy, catalogue, summary_id, FORWARDED)
    result = Forwarding(summary_id)
    result.mailed, result.mail_error = send_mail(settings, content, files.render(content))
    record_mail(store, settings, summary_id, result, actor, now)
    return result
