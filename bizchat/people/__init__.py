"""People: business accounts, phone numbers, contacts, the consent ledger, labels, contact import."""
