"""Inference engines behind one small interface: one file per engine, chosen by name."""

from edgeft.runtime.engines.base import ENGINES, EngineSession, open_session, session_class

__all__ = ["ENGINES", "EngineSession", "open_session", "session_class"]
