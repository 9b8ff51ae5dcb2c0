"""Published test vectors from the RFCs Barbacana implements."""
