//! TODO(helper): cdb
