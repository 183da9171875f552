"""Tests of the notification channels and the message they carry."""
