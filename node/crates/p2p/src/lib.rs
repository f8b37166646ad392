//! Gossip network of a Backstop node (placeholder until it lands).
