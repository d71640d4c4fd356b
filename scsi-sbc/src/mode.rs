//! TODO(helper): mode
