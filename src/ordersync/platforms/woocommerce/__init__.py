"""WooCommerce: REST v3 and the legacy API v2 behind one client interface."""
