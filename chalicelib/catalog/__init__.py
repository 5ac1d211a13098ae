"""The catalog: SKUs, stock per location, and the reservations orders hold on it.

`service` answers the catalog and inventory routes; `stock` holds the
functions orders put into their own transactions (`reserve`, `release`,
`commit`) and the routing question (`stores_with_stock`).
"""
