"""Cockpit (智慧驾驶舱): the whole district on one screen, live — aggregates, stream, big screen."""
