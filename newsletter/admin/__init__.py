"""The admin, by audience: `readers` (topics, subscribers, ESP events), `data_rights`
(export, erase, import), `content` (education pieces and issues: preview, test, send)."""

from newsletter.admin import api_keys, content, readers

__all__ = ["api_keys", "content", "readers"]
