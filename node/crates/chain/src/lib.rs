//! Chain access of a Backstop node (placeholder until it lands).
