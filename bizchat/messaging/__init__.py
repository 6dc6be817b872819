"""Messaging: chats and their messages, receipts, the safe renderer, quick replies, automations."""
