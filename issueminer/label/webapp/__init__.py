"""The annotation app served by `issueminer label`."""
