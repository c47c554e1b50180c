"""Inference engines behind one small interface: one file per engine, chosen by name."""

from edgeft.engine_registry import ENGINES
from edgeft.runtime.engines.base import EngineSession, open_session, session_class

__all__ = ["ENGINES", "EngineSession", "open_session", "session_class"]
