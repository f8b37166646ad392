//! Sans-IO agreement core (placeholder until it lands).
