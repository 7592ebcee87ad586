"""The demo IDE behind ``make run``: a small NiceGUI app with tracking on.

``python -m mbasic_tracking.demo`` serves an editor and a Run button for a tiny
BASIC at http://127.0.0.1:8080, and the operators' page ``/usage``. Events go to
SQLite in ``./demo-data`` unless ``MBASIC_TRACKING_DATABASE_URL`` names MySQL.
"""
