"""Reading marks on printed sheets: the page geometry shared by the printer and the reader
(:mod:`.layout`), the image processing (:mod:`.reader`) and a photo simulator to measure it (:mod:`.simulate`).

Nothing here touches the database or Flask: the reader takes pixels and a layout and returns scores and
decisions; the services decide what a reading means for the ledger.
"""
