-- Channel conventions: the tenant's welcome text, sent for a new follower (WeChat
-- `subscribe`), Telegram's /start and /help and an unmapped menu entry, by language
-- ({"en": "...", "zh": "..."}; a language left out gets the built-in greeting).
ALTER TABLE tenants ADD COLUMN welcome jsonb NOT NULL DEFAULT '{}'::jsonb;

-- What kind of message a customer row is (text, command, follow, unfollow, choice,
-- media) and, for an edit, the channel message id it edits.
ALTER TABLE messages ADD COLUMN kind text NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN edit_of text;
