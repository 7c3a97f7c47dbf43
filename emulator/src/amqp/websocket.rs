//! AMQP over WebSocket on the HTTPS port (subprotocol `AMQPWSB10`): wired in a later step.
