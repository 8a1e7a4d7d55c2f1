"""The Debian package, built, installed and run as a user runs it (make package-test)."""
