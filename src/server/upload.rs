//! One upload: its state file, journal and recording. OWNER: lead.
