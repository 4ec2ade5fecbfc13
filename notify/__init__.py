"""Notifications: validation of what is sent, the durable priority queue's dispatcher, and the
channels a notification reaches (in-app through the user's ``Inbox`` entity first)."""
