"""Datasets: read local and hub files, detect formats, validate rows, render chats into tensors."""
