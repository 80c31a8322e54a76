"""The admin, by audience: `readers` (topics, subscribers, ESP events), `data_rights`
(export, erase, import), `content` (education pieces and issues: preview, test, send),
`approval` (the clinical reviewers' queue and issue histories), `series` (welcome
series and their steps)."""

from newsletter.admin import api_keys, approval, content, readers, series

__all__ = ["api_keys", "approval", "content", "readers", "series"]
