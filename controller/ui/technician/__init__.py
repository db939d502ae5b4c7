"""The technician's screens and widgets: protocol library, editor, approvals, records."""
