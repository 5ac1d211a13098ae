"""The catalog: SKUs, stock per location, and the reservations orders hold on it.

`service` answers the catalog and inventory routes; `stock` holds the
functions orders put into their own transactions (`reserve_lines`, `release`,
`commit`) and the routing question (`stores_with_stock`); `shards` the rows
a launch SKU's stock is split over at a location, and their counts.
"""
