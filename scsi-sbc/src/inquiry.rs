//! TODO(helper): inquiry
