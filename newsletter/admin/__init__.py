"""The admin, by audience: `readers` (topics, subscribers, ESP events), `data_rights`
(export, erase, import), `content` (education pieces and issues: preview, test, send),
`approval` (the clinical reviewers' queue and issue histories)."""

from newsletter.admin import approval, content, readers

__all__ = ["approval", "content", "readers"]
