//! The MCP stdio server. Everything that touches the `rmcp` SDK lives here, so an SDK
//! change touches one module. stdout belongs to the protocol; logs go to stderr.
