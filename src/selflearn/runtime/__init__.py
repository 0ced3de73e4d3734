"""The runtime: the one pipeline the simulator, the CLI, the service and Wyoming share, and what it keeps."""
