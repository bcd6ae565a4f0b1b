"""What moderators and admins do, whatever screen they do it from."""
