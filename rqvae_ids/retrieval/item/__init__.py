"""The item-level retrievers (`sasrec`, `parallel`, `hybrid`): one position per item, every catalog item
scored exactly (`features` -> `model` -> `trainer` -> `retriever`). Training windows come from
`tiger/data.py`'s `build_examples` (the same decoder rule for both families)."""
