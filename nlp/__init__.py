"""Language work, offline: embeddings, action-field suggestion, similar ideas, redaction."""
