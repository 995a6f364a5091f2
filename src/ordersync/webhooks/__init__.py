"""WooCommerce webhooks: deliveries verified and turned into an immediate sync of their shop."""
