-- One database per service (they share one server in development, as in docker-compose).
CREATE DATABASE portail_auth;
CREATE DATABASE portail_invoices;
CREATE DATABASE portail_payments;
CREATE DATABASE portail_notifier;
