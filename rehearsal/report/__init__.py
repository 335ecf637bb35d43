"""The report room: the page (`page`), its words (`text`) and style (`style`), the charts (`charts`,
pandas and matplotlib) and the live view (`live`, which imports neither). Nothing here recomputes
a result: every figure is `summary.json`'s or drawn from the files beside it."""
