module puente.dev/services/providersim

go 1.26.0
