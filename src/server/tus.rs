//! The tus 1.0 protocol: routes, headers and status codes. OWNER: lead.
