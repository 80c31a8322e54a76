"""The admin, by audience: `readers` (topics, subscribers, ESP events), `data_rights`
(export, erase, import), `content` (education pieces and issues: preview, test, send)."""

from newsletter.admin import content, readers

__all__ = ["content", "readers"]
