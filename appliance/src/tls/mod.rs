//! TLS for the proxy and the admin API: the appliance's local certificate authority (created at
//! first start, kept in the state directory), certificates issued from it on first use by name
//! (SNI), and the rustls server configurations built on them.
