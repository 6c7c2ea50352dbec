-- A database created at this version or later has no answers folded before
-- events existed: nothing to seed, and the first start need not walk a
-- ledger that `import` and `rebuild` may have filled since. A database
-- upgraded from before events has ledger items here, and keeps its seeding.
DELETE FROM told_seeding WHERE NOT EXISTS (SELECT 1 FROM ledger_items);
