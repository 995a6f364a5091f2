"""The WooCommerce REST API (wc/v3) and legacy API (wc-api/v2) sandbox."""
