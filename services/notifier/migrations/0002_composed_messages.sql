-- E-mails are composed once, when queued, and sent as these bytes (see mime.py): the text and HTML
-- bodies live inside the message now.
ALTER TABLE emails ADD COLUMN message bytea;
ALTER TABLE emails DROP COLUMN text_body, DROP COLUMN html_body;
