"""Service appointments: slots derived from store hours, bookings that never overbook."""
