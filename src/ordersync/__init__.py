"""ordersync: order sync and ETL between WebCommander and WooCommerce."""

__version__ = "0.1.0"
