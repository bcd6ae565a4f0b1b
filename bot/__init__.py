"""Channel adapters: each turns its platform's updates into Inbound and renders Outbound back."""
