"""Alipay (支付宝开放平台, RSA2): page, WAP and QR pay, notifications, refunds and bills; and its simulator."""
