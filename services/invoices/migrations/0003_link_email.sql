-- The e-mail that made each link between an account and a debtor. When the billing office takes that
-- address off the debtor (and the account's current address is not the debtor's either), the link goes:
-- the person behind it no longer sees that debtor's invoices. Links made before this column existed keep
-- NULL and are never removed automatically.
ALTER TABLE account_debtors ADD COLUMN linked_email text CHECK (linked_email = lower(linked_email));
