"""The text-only remote judge: it reads the other sources' cards (never the image), with its
answer cache and the two-stage choice of which images it sees."""
