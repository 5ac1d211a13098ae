"""Reports: the day's figures of every domain, computed from their records and kept per day.

`daily` computes, stores and answers a Shanghai day's report (the `daily-report`
job and `GET /admin/reports/daily`); it reads the domains only through their
service functions. `models` is the table of stored reports, `schemas` the answer.
"""
