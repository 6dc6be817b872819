-- bizchat schema, migration 0007: the inbox remembers what the business has read.
--
-- chats.read_at is when someone last marked the chat read in the inbox (or answered in
-- it); inbound messages after it count as unread. NULL: never opened, so every inbound
-- message is unread.
ALTER TABLE chats ADD COLUMN read_at TIMESTAMPTZ;
