"""What the API and the workers share: the submission model, the store, the queue message and
task name, the heartbeat record, archives, the one language loader and the shared settings."""
