"""In-process fakes of external services, served over real sockets for end-to-end tests."""
