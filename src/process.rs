//! Child processes in their own process group: streamed output, timeouts, cancellation.
