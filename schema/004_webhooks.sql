-- 004_webhooks: chat-platform identities and the dedup log of webhook events.

-- (platform, the platform's user id) → a zhiku user
CREATE TABLE user_links (
    platform         TEXT NOT NULL,      -- wecom | dingtalk | feishu | slack | generic
    platform_user_id TEXT NOT NULL,      -- WeCom UserID, DingTalk senderStaffId, Feishu open_id, Slack user id
    user_id          INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    created_at       INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (platform, platform_user_id)
) WITHOUT ROWID;

-- every platform message/event id seen, so a platform retry never produces
-- a second answer; pruned after a day
CREATE TABLE webhook_events (
    platform  TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    seen_at   INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (platform, event_id)
) WITHOUT ROWID;
CREATE INDEX webhook_events_seen ON webhook_events(seen_at);
